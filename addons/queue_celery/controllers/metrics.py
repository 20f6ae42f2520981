from odoo import http
from odoo.http import Response, request

from .. import odoo_version
from ..core import metrics
from ..core.models.celery_job import MANAGER_GROUP


class CeleryJobMetrics(http.Controller):

    @http.route("/queue_celery/metrics", type="http", auth="none", methods=["GET"])
    def metrics(self):
        """The jobs of the request's database in Prometheus' text format, for the bearer
        token of odoo.conf (``celery_metrics_token``) or a job manager's session."""
        if not request.db:
            return Response("No database selected\n", status=404, content_type="text/plain")
        if not (metrics.bearer_token_matches(request.httprequest.headers.get("Authorization"))
                or odoo_version.session_has_group(request, MANAGER_GROUP)):
            return Response("Forbidden\n", status=403, content_type="text/plain")
        return Response(metrics.exposition(request.env.cr), content_type=metrics.CONTENT_TYPE)
