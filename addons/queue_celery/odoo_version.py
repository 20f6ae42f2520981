"""What the core needs of Odoo that differs between Odoo versions: here, Odoo 11.0.

Each version's addon has this module with the same names; the core asks nothing of Odoo's
version anywhere else.
"""
from contextlib import contextmanager

import odoo
from odoo import SUPERUSER_ID, api
from odoo.addons.bus.models.bus import json_dump
from odoo.addons.bus.models.bus_presence import DISCONNECTION_TIMER
from odoo.exceptions import AccessDenied
from odoo.http import SessionExpiredException
from odoo.tests import common

# Odoo's longpolling process listens for bus notices on this database.
BUS_DATABASE = "postgres"

# How a numeric field says its groups show the average.
AVERAGED = {"group_operator": "avg"}


def registry(dbname):
    return odoo.registry(dbname)


def close_all_connections():
    odoo.sql_db.close_all()


def read_committed_cursor(dbname):
    """A cursor on ``dbname`` at READ COMMITTED; as a context manager it commits on success."""
    return odoo.sql_db.db_connect(dbname).cursor(serialized=False)


def autocommit_cursor(dbname):
    """A cursor on ``dbname`` in autocommit mode: each statement commits alone."""
    cr = read_committed_cursor(dbname)
    cr.autocommit(True)
    return cr


def connection(cr):
    """The psycopg2 connection under an Odoo cursor."""
    return cr._cnx


def after_commit(cr, on_commit, on_rollback):
    """Call ``on_commit`` once ``cr``'s transaction commits, ``on_rollback`` if it rolls back."""
    cr.after("commit", on_commit)
    cr.after("rollback", on_rollback)


# How a model's ``create`` override is declared (it passes its argument on as it is).
model_create = api.model


def clear_caches(env):
    """Drop the ormcaches of ``env``'s registry, in every process of it."""
    env.registry.clear_caches()

@contextmanager
def environment(cr, uid, context):
    """An environment for a job, outside any request; its caches are dropped after it."""
    with api.Environment.manage():
        env = api.Environment(cr, uid, context)
        try:
            yield env
        finally:
            env.clear()


def flush(env):
    """Write what the ORM of ``env`` holds back: Odoo 11 writes at once, so nothing."""


@contextmanager
def new_environment(dbname, uid=SUPERUSER_ID):
    """An environment of user ``uid`` on a new cursor of ``dbname``, committed on success."""
    with api.Environment.manage(), registry(dbname).cursor() as cr:
        yield api.Environment(cr, uid, {})


def run_sweeper(dbname):
    with new_environment(dbname) as env:
        env["celery.job"]._cron_sweep()


def company_context(company_id):
    """The context entries that make a job run in the company it was enqueued in: property
    fields follow ``force_company``, company defaults ``res.users._get_company`` (which
    this addon teaches to follow ``celery_job_company_id``)."""
    return {"force_company": company_id, "celery_job_company_id": company_id} if company_id else {}


def job_end_notice(dbname, source, message_type):
    """The SQL, and its parameters, that writes the bus notice ``message_type`` of the jobs
    (or batches) in the CTE ``source`` (id, name, state, user_id) to their users whose web
    client is connected (it
    polled within Odoo's disconnection delay: nobody else would read it), returning each
    notice's channel (JSON text)."""
    # The channel as Odoo's bus writes it: json_dump([dbname, "res.partner", partner_id]).
    channel_head = json_dump([dbname, "res.partner"])[:-1] + ","
    now = "(statement_timestamp() at time zone 'UTC')"
    return ("INSERT INTO bus_bus (channel, message, create_date, write_date, create_uid,"
            " write_uid) SELECT %s::text || u.partner_id || ']', json_build_object('type',"
            " %s::text, 'id', ended.id, 'name', ended.name, 'state', ended.state)::text, " +
            now + ", " + now + ", %s::int, %s::int FROM " + source +
            " ended JOIN res_users u ON u.id = ended.user_id"
            " JOIN bus_presence p ON p.user_id = ended.user_id"
            " AND p.last_poll > " + now + " - make_interval(secs => %s::float) RETURNING channel",
            (channel_head, message_type, SUPERUSER_ID, SUPERUSER_ID, DISCONNECTION_TIMER))


def wake_bus(connection, channels):
    """NOTIFY Odoo's longpolling process of notices on ``channels`` (JSON texts, as
    ``job_end_notice`` returns them) through ``connection``, to BUS_DATABASE."""
    with connection.cursor() as cr:
        cr.execute("NOTIFY imbus, %s", ("[%s]" % ",".join(channels),))


def session_has_group(request, group):
    """Whether the request's session is a valid login on the request's database of a user
    in ``group`` (xml id); Odoo 11 leaves checking it to ``auth='none'`` routes."""
    session = request.session
    if not session.uid or session.db != request.db:
        return False
    try:
        session.check_security()
    except (AccessDenied, SessionExpiredException):
        return False
    return request.env(user=session.uid)["res.users"].has_group(group)


def check_read(records):
    """Raise AccessError unless the environment's user may read ``records``."""
    records.check_access_rights("read")
    records.check_access_rule("read")


# Spelled differently on each version, for the code and the tests both versions share.
LIST_VIEW = "tree"
ADMIN_XMLID = "base.user_root"


def as_user(records, user):
    """``records`` seen by ``user``, with their access rights."""
    return records.sudo(user)


def invalidate(records):
    """Drop what the cache holds of ``records``."""
    records.invalidate_cache(ids=records.ids)


def view_arch(model, view_type):
    return model.fields_view_get(view_type=view_type)["arch"]


def user_company(env):
    """The company the environment's user works in now."""
    return env.user.company_id


def run_cron_callback(cron):
    """What Odoo's cron worker calls for the due ``cron``, in this transaction: its callback,
    as its user."""
    return cron.sudo(cron.user_id)._callback(cron.cron_name, cron.ir_actions_server_id.id, cron.id)

def post_install(test_class):
    """Run ``test_class`` after every module is installed, not right after this one."""
    return common.post_install(True)(common.at_install(False)(test_class))
