/**
 * Live job updates in the web client. The server sends, on the user's partner channel,
 * `celery.job` {id, name, state} when one of their jobs ends (done or failed),
 * `celery.job.batch` {id, name, state} when the last job of one of their batches ends, and
 * `celery.job.progress` {id, progress, message} while a job runs. A notification (a warning
 * for a failure) links to the job or batch; the job lists and forms on screen reload.
 */
import { EventBus, markup } from "@odoo/owl";
import { _t } from "@web/core/l10n/translation";
import { registry } from "@web/core/registry";
import { useBus, useService } from "@web/core/utils/hooks";
import { debounce } from "@web/core/utils/timing";
import { escape } from "@web/core/utils/strings";
import { FormController } from "@web/views/form/form_controller";
import { formView } from "@web/views/form/form_view";
import { ListController } from "@web/views/list/list_controller";
import { listView } from "@web/views/list/list_view";

// A burst of messages reloads the job views once.
const RELOAD_DELAY = 300;

export const celeryJobNotificationsService = {
    dependencies: ["bus_service", "notification"],

    start(env, { bus_service, notification }) {
        const jobViews = new EventBus();
        const reloadJobViews = debounce(() => jobViews.trigger("reload"), RELOAD_DELAY);

        bus_service.subscribe("celery.job", ({ id, name, state }) => {
            const failed = state === "failed";
            const label = escape(name || _t("Job %s", id));
            notification.add(
                markup(`<a class="o_celery_job_link" href="/odoo/celery.job/${id}">${label}</a>`),
                {
                    title: failed ? _t("Job failed") : _t("Job done"),
                    type: failed ? "warning" : "success",
                    sticky: failed,
                }
            );
            reloadJobViews();
        });
        bus_service.subscribe("celery.job.batch", ({ id, name }) => {
            const label = escape(name || _t("Batch %s", id));
            notification.add(
                markup(`<a class="o_celery_job_link" href="/odoo/celery.job.batch/${id}">${label}</a>`),
                { title: _t("Batch ended"), type: "success" }
            );
            reloadJobViews();
        });
        bus_service.subscribe("celery.job.progress", reloadJobViews);
        bus_service.start();
        return { jobViews };
    },
};

registry.category("services").add("celery_job_notifications", celeryJobNotificationsService);

/** Reload the job list on each job message, unless the user is selecting records in it. */
export class CeleryJobListController extends ListController {
    setup() {
        super.setup();
        useBus(useService("celery_job_notifications").jobViews, "reload", () => {
            const root = this.model.root;
            if (!root.selection.length && !root.editedRecord) {
                this.model.load();
            }
        });
    }
}

/** Reload the job form on each job message. */
export class CeleryJobFormController extends FormController {
    setup() {
        super.setup();
        useBus(useService("celery_job_notifications").jobViews, "reload", () => {
            if (!this.model.root.isNew) {
                this.model.root.load();
            }
        });
    }
}

registry.category("views").add("celery_job_list", { ...listView, Controller: CeleryJobListController });
registry.category("views").add("celery_job_form", { ...formView, Controller: CeleryJobFormController });
