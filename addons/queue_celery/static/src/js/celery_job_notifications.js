odoo.define('queue_celery.notifications', function (require) {
"use strict";

/**
 * Live job updates in the web client: the server sends, on the user's partner channel,
 * {type: 'celery.job', id, name, state} when one of their jobs ends (done or failed),
 * {type: 'celery.job.batch', id, name, state} when the last job of one of their batches ends,
 * and {type: 'celery.job.progress', id, progress, message} while a job runs. A notification
 * (a warning for a failure) links to the job or batch; open job lists and forms reload.
 */
var bus = require('bus.bus').bus;
var core = require('web.core');
var WebClient = require('web.WebClient');

var _t = core._t;
// A burst of messages reloads the open job view once.
var RELOAD_DELAY = 300;

WebClient.include({
    show_application: function () {
        var self = this;
        return $.when(this._super.apply(this, arguments)).then(function () {
            self._reloadJobViewSoon = _.debounce(self._reloadJobView.bind(self), RELOAD_DELAY);
            bus.on('notification', self, self._onCeleryJobNotifications);
            bus.start_polling();
        });
    },

    /**
     * @private
     * @param {Array} notifications pairs [channel, message]
     */
    _onCeleryJobNotifications: function (notifications) {
        var self = this;
        var jobMessages = _.filter(_.pluck(notifications, 1), function (message) {
            return message && _.contains(['celery.job', 'celery.job.batch', 'celery.job.progress'], message.type);
        });
        _.each(jobMessages, function (message) {
            if (message.type === 'celery.job') {
                self._notifyJobEnded(message);
            } else if (message.type === 'celery.job.batch') {
                self._notifyBatchEnded(message);
            }
        });
        if (jobMessages.length) {
            this._reloadJobViewSoon();
        }
    },

    /**
     * @private
     * @param {Object} message {id, name, state}
     */
    _notifyJobEnded: function (message) {
        var link = _.str.sprintf(
            '<a class="o_celery_job_link" href="#id=%s&model=celery.job&view_type=form">%s</a>',
            message.id, _.escape(message.name || _.str.sprintf(_t('Job %s'), message.id)));
        if (message.state === 'failed') {
            this.do_warn(_t('Job failed'), link, true);
        } else {
            this.do_notify(_t('Job done'), link);
        }
    },

    /**
     * @private
     * @param {Object} message {id, name, state}
     */
    _notifyBatchEnded: function (message) {
        var link = _.str.sprintf(
            '<a class="o_celery_job_link" href="#id=%s&model=celery.job.batch&view_type=form">%s</a>',
            message.id, _.escape(message.name || _.str.sprintf(_t('Batch %s'), message.id)));
        this.do_notify(_t('Batch ended'), link);
    },

    /**
     * Reload the job list or form on screen, unless the user is selecting records in it.
     *
     * @private
     */
    _reloadJobView: function () {
        var viewManager = this.action_manager && this.action_manager.inner_widget;
        var view = viewManager && viewManager.active_view;
        var controller = view && view.controller;
        if (!controller || controller.modelName !== 'celery.job' || controller.isDestroyed()) {
            return;
        }
        if (view.type === 'list' && controller.getSelectedIds().length) {
            return;
        }
        controller.reload();
    },
});

});
