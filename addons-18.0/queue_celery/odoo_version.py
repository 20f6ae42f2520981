"""What the core needs of Odoo that differs between Odoo versions: here, Odoo 18.0.

Each version's addon has this module with the same names; the core asks nothing of Odoo's
version anywhere else.
"""
from contextlib import contextmanager

from psycopg2.extensions import ISOLATION_LEVEL_AUTOCOMMIT, ISOLATION_LEVEL_READ_COMMITTED

import odoo
from odoo import SUPERUSER_ID, api
from odoo.addons.bus.models.bus import ODOO_NOTIFY_FUNCTION, json_dump
from odoo.modules.registry import Registry

# Odoo's websocket process listens for bus notices on this database.
BUS_DATABASE = "postgres"

# How a numeric field says its groups show the average.
AVERAGED = {"aggregator": "avg"}


def registry(dbname):
    return Registry(dbname)


def close_all_connections():
    odoo.sql_db.close_all()


def autocommit_cursor(dbname):
    """A cursor on ``dbname`` in autocommit mode: each statement commits alone."""
    cr = odoo.sql_db.db_connect(dbname).cursor()
    cr.connection.set_isolation_level(ISOLATION_LEVEL_AUTOCOMMIT)
    return cr


def read_committed_cursor(dbname):
    """A cursor on ``dbname`` at READ COMMITTED; as a context manager it commits on success."""
    cr = odoo.sql_db.db_connect(dbname).cursor()
    cr.connection.set_isolation_level(ISOLATION_LEVEL_READ_COMMITTED)
    return cr


def connection(cr):
    """The psycopg2 connection under an Odoo cursor."""
    return cr._cnx


def after_commit(cr, on_commit, on_rollback):
    """Call ``on_commit`` once ``cr``'s transaction commits, ``on_rollback`` if it rolls back
    (Odoo 18's rollback clears the commit hooks; a test cursor's commit drops them)."""
    cr.postcommit.add(on_commit)
    cr.postrollback.add(on_rollback)


# How a model's ``create`` override is declared (it passes its argument on as it is).
model_create = api.model_create_multi


def clear_caches(env):
    """Drop the ormcaches of ``env``'s registry, in every process of it."""
    env.registry.clear_cache()

@contextmanager
def environment(cr, uid, context):
    """An environment for a job, outside any request; its caches are dropped after it.

    A company in ``allowed_company_ids`` that the user no longer belongs to is left out:
    the job then runs in the user's own companies (Odoo would refuse the environment).
    """
    env = api.Environment(cr, uid, context)
    allowed = context.get("allowed_company_ids")
    if allowed and not set(allowed) <= set(env.user._get_company_ids()):
        env = env(context=dict(context, allowed_company_ids=[]))
    try:
        yield env
    finally:
        env.clear()


def flush(env):
    """Write what the ORM of ``env`` holds back (Odoo 18 writes at flush, else at commit)."""
    env.flush_all()


@contextmanager
def new_environment(dbname, uid=SUPERUSER_ID):
    """An environment of user ``uid`` on a new cursor of ``dbname``, committed on success."""
    with registry(dbname).cursor() as cr:
        yield api.Environment(cr, uid, {})


def run_sweeper(dbname):
    with new_environment(dbname) as env:
        env["celery.job"]._cron_sweep()


def company_context(company_id):
    """The context entries that make a job run in the company it was enqueued in: Odoo 18's
    ``env.company`` (company defaults, company-dependent fields) follows the first of
    ``allowed_company_ids``."""
    return {"allowed_company_ids": [company_id]} if company_id else {}


def job_end_notice(dbname, source, message_type):
    """The SQL, and its parameters, that writes the bus notice ``message_type`` of the jobs
    (or batches) in the CTE ``source`` (id, name, state, user_id) to their users whose web
    client is connected (their
    bus presence is not offline: Odoo 18 marks it offline when the websocket closes; nobody
    else would read it), returning each notice's channel (JSON text).

    The rows are those of ``bus.bus._sendone(partner, "celery.job", {id, name, state})``.
    """
    # The channel as Odoo's bus writes it: json_dump([dbname, "res.partner", partner_id]).
    channel_head = json_dump([dbname, "res.partner"])[:-1] + ","
    now = "(statement_timestamp() at time zone 'UTC')"
    return ("INSERT INTO bus_bus (channel, message, create_date, write_date, create_uid,"
            " write_uid) SELECT %s::text || u.partner_id || ']', json_build_object('type',"
            " %s::text, 'payload', json_build_object('id', ended.id, 'name', ended.name,"
            " 'state', ended.state))::text, " + now + ", " + now + ", %s::int, %s::int FROM "
            + source + " ended JOIN res_users u ON u.id = ended.user_id"
            " JOIN bus_presence p ON p.user_id = ended.user_id AND p.status <> 'offline'"
            " RETURNING channel",
            (channel_head, message_type, SUPERUSER_ID, SUPERUSER_ID))


def wake_bus(connection, channels):
    """Tell Odoo's websocket process of notices on ``channels`` (JSON texts, as
    ``job_end_notice`` returns them) through ``connection``, to BUS_DATABASE, as Odoo's
    bus does (``pg_notify`` unless ODOO_NOTIFY_FUNCTION names another)."""
    with connection.cursor() as cr:
        cr.execute("SELECT %s('imbus', %%s)" % ODOO_NOTIFY_FUNCTION,
                   ("[%s]" % ",".join(channels),))


def session_has_group(request, group):
    """Whether the request's session is a valid login on the request's database of a user
    in ``group`` (xml id): Odoo 18 checked the session before any route ran, and logged a
    stale one out."""
    uid = request.session.uid
    return bool(uid) and request.env(user=uid).user.has_group(group)


def check_read(records):
    """Raise AccessError unless the environment's user may read ``records``."""
    records.check_access("read")


# Spelled differently on each version, for the code and the tests both versions share.
LIST_VIEW = "list"
ADMIN_XMLID = "base.user_admin"


def as_user(records, user):
    """``records`` seen by ``user``, with their access rights."""
    return records.with_user(user)


def invalidate(records):
    """Drop what the cache holds of ``records``."""
    records.invalidate_recordset()


def view_arch(model, view_type):
    return model.get_view(view_type=view_type)["arch"]


def user_company(env):
    """The company the environment's user works in now."""
    return env.company


def run_cron_callback(cron):
    """What Odoo's cron worker calls for the due ``cron``, in this transaction: its callback,
    as its user, with the context it gives."""
    return cron.with_user(cron.user_id).with_context(lastcall=cron.lastcall, cron_id=cron.id)._callback(
        cron.cron_name, cron.ir_actions_server_id.id)

def post_install(test_class):
    """Run ``test_class`` after every module is installed, not right after this one."""
    # Imported here, by tests only: Odoo 18 logs an error when a module imports it at load.
    from odoo.tests import common

    return common.tagged("post_install", "-at_install")(test_class)
