from odoo import http
from odoo.http import request

from ..core import metrics


class CeleryJobMetrics(http.Controller):

    @http.route("/queue_celery/metrics", type="http", auth="none", methods=["GET"],
                save_session=False)
    def metrics(self):
        """Prometheus' scrape of the jobs (``core/metrics.py``)."""
        return metrics.respond(request)
