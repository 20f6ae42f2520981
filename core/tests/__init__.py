"""Odoo tests both versions run alike; each addon's tests package imports them."""
