from odoo import models


class QueueCeleryBench(models.Model):
    _name = "queue.celery.bench"
    _description = "Benchmark jobs"

    def noop(self):
        """Benchmark no-op job"""
        return None
