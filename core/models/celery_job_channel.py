"""Channels: named limits on how jobs start, decided by PostgreSQL at every claim."""
import re

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

from ... import odoo_version
from .. import jobstore
from ..celeryapp import QUEUES, publish_after_commit

ROOT = "root"
NAME = re.compile(r"^root(\.[A-Za-z0-9_-]+)*$")
# What an edit of these fields may let start: held jobs are published again at once.
LIMITS = ("capacity", "sequential", "rate_limit", "paused")


class CeleryJobChannel(models.Model):
    """A channel: a dotted path under ``root`` whose jobs start within its limits and its
    parents'.

    Every worker's claim reads the channel rows of the job's path in its admission
    (``jobstore.admit``): an edit takes effect at the next claim on every worker, and the
    jobs it held are published again once the edit commits.
    """

    _name = "celery.job.channel"
    _description = "Job channel"
    _order = "name"

    name = fields.Char(required=True, help="A dotted path under root: root.imports.csv is a "
                       "sub-channel of root.imports")
    queue = fields.Selection([(queue, queue.capitalize()) for queue in QUEUES], required=True,
                             default="default",
                             help="The Celery queue of its jobs, unless enqueue names one")
    capacity = fields.Integer(default=0, help="How many of its jobs (its sub-channels' "
                              "included) may run at the same time on every worker of every "
                              "host; 0: no limit of its own")
    sequential = fields.Boolean(default=False, help="One job at a time, in enqueue order; a "
                                "failed job holds the ones behind it until it is retried, "
                                "set done or cancelled")
    rate_limit = fields.Float("Rate limit (jobs/s)", default=0.0,
                              help="Jobs started per second at most, across workers; 0: none")
    paused = fields.Boolean(readonly=True, default=False, help="Its jobs wait; running jobs finish")
    started_count = fields.Integer("Running", compute="_compute_counts")
    held_count = fields.Integer("Held", compute="_compute_counts",
                                help="Jobs waiting for their turn in this channel's path")

    _sql_constraints = [
        ("name_unique", "unique(name)", "A channel's name is unique."),
        ("capacity_positive", "check(capacity >= 0)", "A channel's capacity cannot be negative."),
        ("rate_limit_positive", "check(rate_limit >= 0)",
         "A channel's rate limit cannot be negative."),
    ]

    def _compute_counts(self):
        counts = jobstore.channel_counts(self.env.cr, self.ids) if self.ids else {}
        for channel in self:
            channel.started_count, channel.held_count = counts.get(channel.id, (0, 0))

    @api.constrains("name")
    def _check_name(self):
        for channel in self:
            if not NAME.match(channel.name or ""):
                raise ValidationError("Channel %r: a channel's name is a dotted path under root "
                                      "(root.imports), of letters, digits, _ and -."
                                      % channel.name)
            parent = channel.name.rpartition(".")[0]
            if parent and not self.search_count([("name", "=", parent)]):
                raise ValidationError("Channel %s: create its parent %s first."
                                      % (channel.name, parent))

    def _check_not_root_or_parent(self, action):
        for channel in self:
            if channel.name == ROOT or self.search_count(
                    [("name", "=like", channel.name.replace("_", "\\_") + ".%")]):
                raise UserError("Channel %s cannot be %s: it is root or has sub-channels."
                                % (channel.name, action))

    def write(self, vals):
        """Edit channels; the jobs they held that may start now are published again."""
        if "name" in vals:
            self.filtered(lambda channel: channel.name != vals["name"]) \
                ._check_not_root_or_parent("renamed")
        result = super().write(vals)
        if "name" in vals:
            odoo_version.clear_caches(self.env)  # job functions name their channels
        if any(field in vals for field in LIMITS):
            self._release_held()
        return result

    def unlink(self):
        """Channels without sub-channels, but root, may be deleted; one with jobs may not
        (the database refuses it)."""
        self._check_not_root_or_parent("deleted")
        return super().unlink()

    def _release_held(self):
        odoo_version.flush(self.env)  # the release reads the channels in SQL
        for channel in self:
            how_many = channel.capacity or (1 if channel.sequential else jobstore.RELEASE_MAX)
            publish_after_commit(self.env.cr, jobstore.release_held(
                self.env.cr, channel.ids, how_many, whole=True))

    def button_pause(self):
        """Hold the jobs of these channels (and their sub-channels) that have not started;
        running jobs finish."""
        return self.write({"paused": True})

    def button_resume(self):
        """Let the jobs of these channels start again."""
        return self.write({"paused": False})
