"""Set-up shared by the benchmarks: a throwaway NEUROFIT_HOME and schema prefix."""

import atexit
import os
import tempfile
import uuid


def isolated_prefix() -> str:
    """Use a temporary embedded database unless a server is configured; return a fresh prefix."""
    if not os.environ.get("DJ_HOST"):
        os.environ["NEUROFIT_HOME"] = tempfile.mkdtemp(prefix="neurofit_bench_")

        def stop() -> None:
            from neurofit.schemas.connection import stop_embedded

            stop_embedded()

        atexit.register(stop)
    return f"bench_{uuid.uuid4().hex[:8]}_"
