from ..core.tests import test_dependencies
from ..core.tests import test_encoding
from ..core.tests import test_enqueue
from ..core.tests import test_rpc
from ..core.tests import test_security
from ..core.tests import test_stop_button
from ..core.tests import test_ui_screens
from . import test_bulk_actions
