from odoo import models

from odoo.addons.queue_job.job import job


class QueueJobBench(models.Model):
    _name = "queue.job.bench"
    _description = "Benchmark jobs"

    @job
    def noop(self):
        """Benchmark no-op job"""
        return None
