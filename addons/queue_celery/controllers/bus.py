from odoo.addons.bus.controllers.main import BusController
from odoo.http import request


class CeleryJobBusController(BusController):
    """Listen on the user's partner channel, where job notifications are sent.

    The ``mail`` addon does the same; without it nothing subscribes the web client there
    (and the browser may not name channels other than strings itself).
    """

    def _poll(self, dbname, channels, last, options):
        if request.session.uid:
            channel = (request.db, "res.partner", request.env.user.partner_id.id)
            if channel not in channels:
                channels = list(channels) + [channel]
        return super()._poll(dbname, channels, last, options)
