import xmlrpc.client

from odoo.tests import common

from ... import odoo_version


@odoo_version.post_install
class TestRpc(common.HttpCase):

    def rpc(self, method, *args, **kwargs):
        return self.xmlrpc_object.execute_kw(self.env.cr.dbname, self.env.ref(odoo_version.ADMIN_XMLID).id,
                                             "admin", "celery.job", method, list(args), kwargs)

    def test_enqueue_over_rpc_answers_the_job_id(self):
        job_id = self.rpc("enqueue", "res.partner", "write", args=[{"comment": "over RPC"}],
                          record_ids=[self.env.ref("base.main_partner").id], queue="low")
        self.assertIsInstance(job_id, int)
        job, = self.rpc("read", [job_id], ["model_name", "method_name", "queue", "state"])
        self.assertEqual((job["model_name"], job["method_name"], job["queue"], job["state"]),
                         ("res.partner", "write", "low", "pending"))

    def test_private_method_over_rpc_is_refused(self):
        with self.assertRaisesRegex(xmlrpc.client.Fault, "Private methods \\(such as _compute_display_name\\)"):
            self.rpc("enqueue", "res.partner", "_compute_display_name")
        with self.assertRaisesRegex(xmlrpc.client.Fault, "Private method"):
            self.rpc("_enqueue", "res.partner", [], "unlink")
