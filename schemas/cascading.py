"""Deletes that reach datasets derived from the trained models they remove.

`CascadesToDerived` is a mixin of the core tables upstream of `TrainedModel` (`Dataset`, `Model`,
`Trainer`, `Seed`, `TrainingSelection`, `TrainedModel`): a plain DataJoint ``delete`` on any of
them first deletes the `Dataset` rows derived from the trained models it removes
(`neurofit.schemas.derived.DerivedDataset`), with everything built on those, in one transaction.
It lives apart from `neurofit.schemas.derived` because that module's table refers to these tables.
"""

from __future__ import annotations

import datajoint as dj
from datajoint.utils import user_choice

__all__ = ["CascadesToDerived"]


class CascadesToDerived:
    """Mixin of the core tables upstream of `TrainedModel`: deletes reach derived datasets too."""

    def delete(self, transaction: bool = True, prompt: bool | None = None, part_integrity: str = "enforce") -> int:
        """DataJoint's delete, after the derived `Dataset` rows (and their descendants), atomically."""
        from .config import Dataset
        from .derived import derived_from

        # DataJoint reuses the graph of an earlier cascade while no new schema has appeared
        # (datajoint #1493), so a lab schema another process has dropped since stays in it and the
        # cascade fails on that schema's missing tables. Deletes are rare; a fresh graph is cheap.
        self.connection.dependencies.clear()
        derived = derived_from(self)
        if not derived:
            return super().delete(transaction=transaction, prompt=prompt, part_integrity=part_integrity)
        connection = self.connection
        prompt = dj.config["safemode"] if prompt is None else prompt
        if transaction and connection.in_transaction and prompt:
            raise dj.DataJointError("Delete cannot use a transaction within an ongoing transaction. "
                                    "Set transaction=False or prompt=False.")
        own = transaction and not connection.in_transaction
        if own:
            connection.start_transaction()
        try:
            before = len(self)
            (Dataset & derived).delete(transaction=False, prompt=False, part_integrity=part_integrity)
            super().delete(transaction=False, prompt=False, part_integrity=part_integrity)
            count = before - len(self)
        except BaseException:
            if own:
                connection.cancel_transaction()
            raise
        if own:
            commit = not prompt or user_choice(
                f"Delete {count} row(s) of {self.table_name} and {len(derived)} derived dataset(s) with "
                "everything built on them. Commit deletes?", default="no") == "yes"
            if commit:
                connection.commit_transaction()
            else:
                connection.cancel_transaction()
                count = 0
        return count
