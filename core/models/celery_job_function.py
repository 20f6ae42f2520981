"""Per-method job defaults: one record per ``model.method`` enqueued."""
import re
import types

from odoo import api, fields, models, tools
from odoo.exceptions import ValidationError

from ... import odoo_version
from .. import job_options, jobstore
from ..celeryapp import MAX_PRIORITY

# A related action is a method written as one: a job manager names it, any user who opens a
# job's records runs it, so it cannot be just any method (``unlink``).
RELATED_ACTION = re.compile(r"^_?related_action\w*$")


class _Missing(Exception):
    """No job function of this method yet."""


class CeleryJobFunction(models.Model):
    """The defaults of the jobs of one method: created by its first enqueue (or declared in
    a data file), edited by job managers.

    Options given at enqueue win over these; these win over odoo.conf's.
    """

    _name = "celery.job.function"
    _description = "Job function"
    _order = "model_name, method_name"

    name = fields.Char(compute="_compute_name", store=True)
    model_name = fields.Char("Model", required=True)
    method_name = fields.Char("Method", required=True)
    channel_id = fields.Many2one("celery.job.channel", "Channel", ondelete="restrict",
                                 help="Its jobs' channel unless enqueue names one")
    priority = fields.Selection([(str(level), str(level)) for level in range(MAX_PRIORITY + 1)],
                                help="0 runs first; empty: enqueue's default")
    max_retries = fields.Integer(default=-1, help="-1: enqueue's default")
    retry_pattern = fields.Text(help="{try: seconds}: from the n-th try on, wait so many "
                                "seconds before a retry, e.g. {1: 10, 5: 60, 10: 600}; "
                                "empty: exponential backoff (celery_retry_backoff)")
    time_limit = fields.Integer(help="Seconds its jobs may run; 0: celery_job_time_limit")
    related_action = fields.Char(help="A method of the model named related_action..., run on "
                                 "the job's records as the user who opens them, that returns "
                                 "the action the job's Related button opens; empty: the "
                                 "records themselves")

    _sql_constraints = [
        ("model_method_unique", "unique(model_name, method_name)",
         "One job function per model and method."),
        ("max_retries_range", "check(max_retries >= -1 and max_retries <= %d)"
         % job_options.MAX_RETRIES_LIMIT, "max_retries: -1 (the default) to %d."
         % job_options.MAX_RETRIES_LIMIT),
        ("time_limit_range", "check(time_limit >= 0 and time_limit <= %d)"
         % job_options.TIME_LIMIT_MAX, "time_limit: 0 (the default) to %d s."
         % job_options.TIME_LIMIT_MAX),
    ]

    @odoo_version.model_create
    def create(self, vals):
        functions = super().create(vals)
        odoo_version.clear_caches(self.env)
        return functions

    def write(self, vals):
        result = super().write(vals)
        odoo_version.clear_caches(self.env)
        return result

    def unlink(self):
        result = super().unlink()
        odoo_version.clear_caches(self.env)
        return result

    @api.model
    def _enqueue_defaults(self, model_name, method_name):
        """What enqueue takes from the job function of ``model_name.method_name`` (see
        ``jobstore.function_defaults``), kept by each process until a function or a channel's
        name changes. A missing function is created, and until its transaction ends (a
        savepoint may undo its creation) functions are read without the cache."""
        cr = self.env.cr
        if not getattr(cr, "_celery_created_function", False):
            try:
                return self._cached_defaults(model_name, method_name)
            except _Missing:
                pass
        defaults = jobstore.function_defaults(cr, model_name, method_name)
        if defaults is None:
            cr._celery_created_function = True

            def transaction_ended():
                cr._celery_created_function = False

            odoo_version.after_commit(cr, transaction_ended, transaction_ended)
        return defaults or {}

    @api.model
    @tools.ormcache("model_name", "method_name")
    def _cached_defaults(self, model_name, method_name):
        defaults = jobstore.function_defaults(self.env.cr, model_name, method_name, create=False)
        if defaults is None:
            raise _Missing()  # not cached
        return types.MappingProxyType(defaults)

    @api.depends("model_name", "method_name")
    def _compute_name(self):
        for function in self:
            function.name = "%s.%s" % (function.model_name, function.method_name)

    @api.constrains("retry_pattern")
    def _check_retry_pattern(self):
        for function in self:
            try:
                job_options.parse_retry_pattern(function.retry_pattern)
            except job_options.JobOptionError as error:
                raise ValidationError(str(error)) from None

    @api.constrains("related_action")
    def _check_related_action(self):
        for function in self:
            if function.related_action and not RELATED_ACTION.match(function.related_action):
                raise ValidationError("Related action %r: a method named related_action... "
                                      "(written to open a job's records), not any method."
                                      % function.related_action)
