"""The one deferred DataJoint schema every neurofit table belongs to.

Declaring tables never connects; `neurofit.schemas.activate` binds them to a database schema.
"""

import warnings

# neurofit decides where the database is (schemas.connection); with no datajoint.json that is the
# embedded server, so DataJoint's "No datajoint.json found" warning is noise here.
warnings.filterwarnings("ignore", message="No datajoint.json found", category=UserWarning)

import datajoint as dj  # noqa: E402

schema = dj.Schema()
