from ..core.tests import test_dependencies, test_encoding
from . import test_enqueue
from . import test_security
from . import test_rpc
from . import test_ui_screens
from . import test_bus
