"""The one deferred DataJoint schema every neurofit table belongs to.

Declaring tables never connects; `neurofit.schemas.activate` binds them to a database schema.
"""

import datajoint as dj

schema = dj.Schema()
