"""`gitrun.entities` as MLflow programs import it; the code lives in
`gitrun.format.entities`.

The module replaces itself with that one, so `import gitrun.entities` and attribute access give
the very same module object.
"""

import sys

from .format import entities as _impl

sys.modules[__name__] = _impl
