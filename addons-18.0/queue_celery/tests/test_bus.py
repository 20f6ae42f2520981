"""The job-end notice is written in SQL by the worker: Odoo 18's own bus must read it as one of
its notifications, on the user's partner channel, and only while the user is connected."""
from odoo.tests import common

from .. import odoo_version


class TestJobEndNotice(common.TransactionCase):

    def setUp(self):
        super().setUp()
        self.user = self.env["res.users"].with_context(no_reset_password=True).create({
            "name": "Notified", "login": "notified_jobs",
            "groups_id": [(6, 0, [self.env.ref("base.group_user").id])]})
        self.job = self.env["celery.job"].with_user(self.user).enqueue(
            "res.partner", "search", args=[[]], description="Nightly sync").sudo()

    def write_notice(self):
        """Write the notice of the job, as the worker does when it ends; the channels."""
        sql, params = odoo_version.job_end_notice(self.env.cr.dbname, "ended", "celery.job")
        self.env.cr.execute("WITH ended AS (SELECT id, name, 'failed' AS state, user_id"
                            " FROM celery_job WHERE id = %s) " + sql, [self.job.id, *params])
        return [row[0] for row in self.env.cr.fetchall()]

    def test_odoo_reads_the_notice_on_the_partner_channel_of_a_connected_user(self):
        self.env["bus.presence"].create({"user_id": self.user.id, "status": "online"})
        self.assertEqual(self.write_notice(), ['["%s","res.partner",%d]' % (
            self.env.cr.dbname, self.user.partner_id.id)])
        messages = [notification["message"] for notification in
                    self.env["bus.bus"]._poll([self.user.partner_id])]
        self.assertIn({"type": "celery.job", "payload": {
            "id": self.job.id, "name": "Nightly sync", "state": "failed"}}, messages)

    def test_no_notice_for_a_user_whose_web_client_is_closed(self):
        self.assertEqual(self.write_notice(), [], "no presence at all")
        self.env["bus.presence"].create({"user_id": self.user.id, "status": "offline"})
        self.assertEqual(self.write_notice(), [], "the websocket closed")
