"""The web client in headless Chromium: the tools it needs and a server that answers it."""
import os
import shutil
import urllib.request

from harness.odoo_version import ODOO_VERSION
from harness.processes import OdooProcess
from harness.site import ROOT, RUN, free_port, write_conf

CHROMIUM = os.environ.get("QC_CHROMIUM", "/usr/bin/chromium")
# The plain internal user the browser tests log in as, beside admin.
USER_LOGIN, USER_PASSWORD = "qc_browser_user", "qc-browser-user"

# Where tests/server/browser/jobs_screens.js finds things in each version's web client: the
# apps menu to open before an app's link shows (none on 11, whose app links are in the navbar),
# the status bar's current state, a notification's close button; the window, wider on 18 whose
# job list's columns are wider.
WEB_CLIENT = {
    11: {"appsMenu": None, "statusCurrent": ".o_statusbar_status .btn-primary",
         "notificationClose": ".o_notification a.o_close", "viewport": [1280, 760]},
    18: {"appsMenu": ".o_navbar_apps_menu button",
         "statusCurrent": ".o_statusbar_status .o_arrow_button_current",
         "notificationClose": ".o_notification .o_notification_close", "viewport": [1600, 860]},
}[ODOO_VERSION.major]
# Screenshots as docs/screenshots/ holds them: 11's at its top, each other version's in a folder.
SCREENSHOTS = RUN / "screenshots" / ("" if ODOO_VERSION.major == 11 else str(ODOO_VERSION.major))


def missing_tools():
    """Why the browser cannot be driven here, or None."""
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if not shutil.which("node"):
        return "node is missing"
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        return "npm playwright-core is missing (npm install)"
    return None


class ThreadedServer(OdooProcess):
    """``odoo --workers=0`` on its own port: it serves the bus (Odoo 11's /longpolling, Odoo
    18's /websocket) on that port, without a proxy."""

    def __init__(self, database):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__("browser-server", [
            "-c", str(write_conf("browser")), "-d", database, f"--db-filter=^{database}$",
            "--workers=0", "--max-cron-threads=0", "--http-interface=127.0.0.1",
            f"--http-port={self.port}"])
        # Not a request before the registry is loaded: a request thread importing modules
        # while the main thread loads them can deadlock on the import lock.
        self.wait_for(lambda: "Modules loaded." in self.output() and self.answers())

    def answers(self):
        try:
            with urllib.request.urlopen(self.url + "/web/login", timeout=5) as answer:
                return answer.status == 200
        except OSError:
            return False
