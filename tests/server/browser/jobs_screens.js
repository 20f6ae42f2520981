#!/usr/bin/env node
/*
 * Drives Settings > Jobs in headless Chromium, as a plain user or as a job manager.
 *
 *   node tests/server/browser/jobs_screens.js user|manager
 *
 * Environment: QC_URL (the Odoo server), QC_LOGIN, QC_PASSWORD, QC_JOB_NAME (a failed job
 * of this user), QC_OTHER_JOB_NAME (a job of another user), QC_SHOTS (folder for
 * screenshots), QC_CHROMIUM (default /usr/bin/chromium), QC_WEB_CLIENT (JSON: where this Odoo
 * version's web client has what differs, harness.browser.WEB_CLIENT). Prints one line per
 * step; exits 1 on the first failed check, after a screenshot of the page.
 */
'use strict';

const path = require('path');
const fs = require('fs');
const { chromium } = require('playwright-core');

const env = process.env;
const scenario = process.argv[2];
const shots = env.QC_SHOTS;
const ui = JSON.parse(env.QC_WEB_CLIENT);
const TIMEOUT = 30000;

function step(message) {
    console.log('step: ' + message);
}

function check(condition, message) {
    if (!condition) {
        throw new Error('check failed: ' + message);
    }
    step('ok ' + message);
}

async function shoot(page, name) {
    const file = path.join(shots, name + '.png');
    await page.screenshot({ path: file });
    step('screenshot ' + file);
}

async function login(page) {
    await page.goto(env.QC_URL + '/web/login');
    await page.fill('input[name=login]', env.QC_LOGIN);
    await page.fill('input[name=password]', env.QC_PASSWORD);
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    await page.waitForSelector('.o_web_client', { timeout: TIMEOUT });
    step('logged in as ' + env.QC_LOGIN);
}

function menuLink(page, xmlid) {
    return page.locator('a[data-menu-xmlid="' + xmlid + '"]:visible');
}

// A menu item inside a section (Settings > Jobs > Jobs) shows once its section is opened.
async function openMenu(page, xmlid, section) {
    if (section && !(await menuLink(page, xmlid).count())) {
        await page.locator('[data-menu-xmlid="' + section + '"]:visible').click();
    }
    await menuLink(page, xmlid).click();
}

// Odoo 18 lists its apps only in the apps menu, opened first; Odoo 11 in the navbar.
async function openAppsMenu(page) {
    if (ui.appsMenu) {
        await page.click(ui.appsMenu);
        await page.waitForSelector('.o_app');
    }
}

async function closeAppsMenu(page) {
    if (ui.appsMenu) {
        await page.keyboard.press('Escape');
    }
}

async function waitForList(page) {
    await page.waitForSelector('.o_list_view .o_data_row', { timeout: TIMEOUT });
}

function row(page, name) {
    return page.locator('.o_list_view tr.o_data_row', { hasText: name });
}

async function openFailedJob(page) {
    const failed = row(page, env.QC_JOB_NAME);
    await failed.first().waitFor({ timeout: TIMEOUT });
    check((await failed.first().getAttribute('class')).includes('text-danger'),
          'the failed job "' + env.QC_JOB_NAME + '" is red in the list');
    await failed.first().locator('td.o_data_cell').first().click();
    await page.waitForSelector('.o_form_view', { timeout: TIMEOUT });
    await page.click('.o_notebook a[role=tab]:has-text("Traceback")');
    const traceback = await page.locator('.o_form_view .o_celery_job_traceback').first().innerText();
    check(traceback.includes('boom'), 'the form shows the traceback of the failure');
    const status = await page.locator(ui.statusCurrent).innerText();
    check(status.trim() === 'Failed', 'the status bar shows Failed');
}

function headerButton(page, text) {
    return page.locator('.o_statusbar_buttons button', { hasText: new RegExp('^' + text + '$') });
}

async function closeNotifications(page) {
    for (const close of await page.locator(ui.notificationClose).all()) {
        await close.click();
    }
    await page.waitForFunction(() => !document.querySelector('.o_notification'));
}

async function failedNotifications(page) {
    return page.locator('.o_notification', { hasText: 'Job failed' }).count();
}

async function asManager(page) {
    await openAppsMenu(page);
    await openMenu(page, 'base.menu_administration');
    // Settings > Jobs is a section of Settings' side menu: its Jobs and Batches entries.
    await openMenu(page, 'queue_celery.menu_celery_job_list', 'queue_celery.menu_celery_job');
    await waitForList(page);
    check(await row(page, env.QC_OTHER_JOB_NAME).count() > 0, "a manager sees other users' jobs");
    await closeNotifications(page);
    await shoot(page, 'jobs-list');
    await openFailedJob(page);
    const retry = headerButton(page, 'Retry');
    check(await retry.isVisible(), 'a manager sees Retry on a failed job');
    check(!(await headerButton(page, 'Cancel').isVisible()), 'Cancel is hidden on a failed job');
    await closeNotifications(page);
    await shoot(page, 'job-failed-form');
    const before = await failedNotifications(page);
    await retry.click();
    step('clicked Retry');
    await page.waitForFunction(
        (count) => document.querySelectorAll('.o_notification').length > 0 &&
            Array.from(document.querySelectorAll('.o_notification'))
                .filter((el) => el.innerText.includes('Job failed')).length > count,
        before, { timeout: TIMEOUT });
    const notification = page.locator('.o_notification', { hasText: 'Job failed' }).last();
    check((await notification.innerText()).includes(env.QC_JOB_NAME),
          'the failure notification names the job');
    check(await notification.locator('a.o_celery_job_link').count() === 1,
          'the failure notification links to the job');
    // Only a reload after the job failed again shows a failure above the manual retry.
    const historyAfterRetry = () => {
        const history = document.querySelector('.o_form_view [name=retry_history]');
        const text = history ? history.textContent : '';
        return text.includes('retried by') && text.split('retried by')[0].includes('failed:');
    };
    try {
        await page.waitForFunction(historyAfterRetry, null, { timeout: 2 * TIMEOUT });
    } catch (error) {
        console.log('retry history: ' + await page.evaluate(
            () => (document.querySelector('.o_form_view [name=retry_history]') || {}).outerHTML));
        throw error;
    }
    step('ok the open form reloaded with the new failure in its retry history');
    await page.locator('.o_form_view [name=retry_history]').scrollIntoViewIfNeeded();
    await page.waitForTimeout(1000);  // the notification's fade-in
    await shoot(page, 'job-failed-notification');
}

async function asUser(page) {
    // With Jobs as their only app, the web client opens it at once.
    await waitForList(page);
    await openAppsMenu(page);
    check(await page.locator('a[data-menu-xmlid="base.menu_administration"]').count() === 0,
          'a plain user has no Settings menu');
    await closeAppsMenu(page);
    check(await row(page, env.QC_OTHER_JOB_NAME).count() === 0,
          "a plain user does not see other users' jobs");
    await openFailedJob(page);
    // Related (what the job worked on, as they may read it) is the one button they get.
    const buttons = await page.locator('.o_statusbar_buttons button:visible').allInnerTexts();
    check(buttons.map((text) => text.trim()).join(',') === 'Related',
          'a plain user has no Retry, Cancel or Set to done button, only Related');
    await page.click('.o_control_panel .breadcrumb a');
    await waitForList(page);
    // Enqueue over JSON-RPC from the page, as any internal user may.
    await closeNotifications(page);
    const jobName = 'Export invoices ' + Math.random().toString(36).slice(2, 8);
    const answer = await page.evaluate(async (name) => {
        const reply = await fetch('/web/dataset/call_kw/celery.job/enqueue', {
            method: 'POST', headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ jsonrpc: '2.0', method: 'call', params: {
                model: 'celery.job', method: 'enqueue',
                args: ['queue.celery.test.record', 'make'],
                kwargs: { args: [name], description: name } } }),
        });
        return reply.json();
    }, jobName);
    check(Number.isInteger(answer.result), 'the user enqueued a job over JSON-RPC');
    const done = page.locator('.o_notification', { hasText: 'Job done' }).filter({ hasText: jobName });
    await done.waitFor({ timeout: TIMEOUT });
    step('ok the done notification arrived');
    await row(page, jobName).filter({ hasText: 'Done' }).waitFor({ timeout: TIMEOUT });
    step('ok the open list reloaded with the job done');
    await page.waitForTimeout(1000);  // the notification's fade-in
    await shoot(page, 'job-done-notification');
}

(async () => {
    fs.mkdirSync(shots, { recursive: true });
    const browser = await chromium.launch({
        executablePath: env.QC_CHROMIUM || '/usr/bin/chromium',
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
               '--disable-background-networking', '--disable-component-update',
               '--disable-sync'],  // launch() gives each run a fresh profile of its own
    });
    const [width, height] = ui.viewport;
    const page = await browser.newPage({ viewport: { width, height } });
    page.setDefaultTimeout(TIMEOUT);
    page.on('pageerror', (error) => console.log('page error: ' + error.message));
    let code = 0;
    try {
        await login(page);
        await (scenario === 'manager' ? asManager : asUser)(page);
        console.log('passed: ' + scenario);
    } catch (error) {
        console.log('failed: ' + scenario + ': ' + error.message);
        await shoot(page, 'failure-' + scenario).catch(() => {});
        code = 1;
    } finally {
        await browser.close();
    }
    process.exit(code);
})();
