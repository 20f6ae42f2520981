import psycopg2

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import common
from odoo.tools import mute_logger

from ... import odoo_version


class TestChannels(common.TransactionCase):

    def setUp(self):
        super().setUp()
        self.Channel = self.env["celery.job.channel"]
        self.imports = self.Channel.create({"name": "root.imports", "capacity": 2,
                                            "queue": "low"})
        Users = self.env["res.users"].with_context(no_reset_password=True)
        self.user = Users.create({"name": "Channel user", "login": "channel_user", "groups_id": [
            (6, 0, [self.env.ref("base.group_user").id])]})
        self.portal = Users.create({"name": "Channel portal", "login": "channel_portal",
                                    "groups_id": [(6, 0, [self.env.ref("base.group_portal").id])]})
        self.manager = Users.create({"name": "Channel manager", "login": "channel_manager",
                                     "groups_id": [(6, 0, [
                                         self.env.ref("base.group_user").id,
                                         self.env.ref("queue_celery.group_celery_job_manager").id])]})

    def test_a_job_takes_its_channel_and_the_channel_queue_unless_one_is_given(self):
        partner = self.env["res.partner"].create({"name": "Channel target"})
        job = partner.with_delay(channel="root.imports").write({"comment": "x"})
        self.assertEqual((job.channel_id, job.queue), (self.imports, "low"))
        job = self.env["celery.job"].enqueue(partner, "write", args=[{}], channel="root.imports",
                                             queue="high")
        self.assertEqual((job.channel_id, job.queue), (self.imports, "high"))
        job = partner.with_delay().write({"comment": "y"})
        self.assertEqual((job.channel_id.id, job.queue), (False, "default"))

    def test_an_unknown_channel_is_refused_at_enqueue(self):
        with self.assertRaisesRegex(UserError, "Unknown channel 'root.nowhere'"):
            self.env["celery.job"].enqueue("res.partner", "search", args=[[]],
                                           channel="root.nowhere")
        with self.assertRaisesRegex(UserError, "channel must be a channel's name"):
            self.env["celery.job"].enqueue("res.partner", "search", args=[[]], channel=3)

    def test_names_are_dotted_paths_under_an_existing_parent(self):
        for name in ("imports", "root.", "root..x", "root.a b", "root.nowhere.csv"):
            with self.assertRaises(ValidationError, msg=name):
                with self.env.cr.savepoint():
                    self.Channel.create({"name": name})
        self.Channel.create({"name": "root.imports.csv_2"})
        root = self.env.ref("queue_celery.channel_root")
        for channel in (root, self.imports):
            with self.assertRaises(UserError):
                channel.unlink()
            with self.assertRaises(UserError):
                channel.name = "root.other"

    def test_job_users_read_channels_and_only_managers_change_them(self):
        as_user = odoo_version.as_user(self.imports, self.user)
        self.assertEqual(as_user.capacity, 2)
        for change in (lambda channel: channel.write({"capacity": 0}),
                       lambda channel: channel.button_pause(),
                       lambda channel: channel.button_resume(),
                       lambda channel: channel.unlink(),
                       lambda channel: channel.create({"name": "root.mine"})):
            with self.assertRaises(AccessError):
                change(as_user)
        with self.assertRaises(AccessError):
            odoo_version.as_user(self.imports, self.portal).read(["capacity"])
        as_manager = odoo_version.as_user(self.imports, self.manager)
        as_manager.button_pause()
        self.assertTrue(self.imports.paused)
        as_manager.button_resume()
        as_manager.write({"capacity": 5, "sequential": True, "rate_limit": 2.5})
        self.assertEqual((self.imports.paused, self.imports.capacity), (False, 5))

    def test_limits_cannot_be_negative(self):
        for values in ({"capacity": -1}, {"rate_limit": -0.5}):
            with self.assertRaises(psycopg2.IntegrityError, msg=values), \
                    mute_logger("odoo.sql_db"), self.env.cr.savepoint():
                self.imports.write(values)
                odoo_version.flush(self.env)
