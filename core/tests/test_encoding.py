import datetime
from decimal import Decimal

from odoo.addons.queue_celery.core import encoding
from odoo.tests import common


class TestEncoding(common.TransactionCase):

    def test_round_trip_of_what_json_cannot_carry_alone(self):
        partners = self.env["res.partner"].search([], limit=3)
        value = {
            "records": partners,
            "day": datetime.date(2024, 2, 29),
            "moment": datetime.datetime(2024, 2, 29, 13, 45, 1, 120),
            "amount": Decimal("12.30"),
            "pair": (1, "two", [3.5, None, True]),
            "nested": [{"empty": self.env["res.users"]}],
        }
        decoded = encoding.loads(encoding.dumps(value), self.env)
        self.assertEqual(decoded["records"], partners)
        self.assertEqual(decoded["nested"][0]["empty"]._name, "res.users")
        self.assertEqual(decoded["day"], value["day"])
        self.assertEqual(decoded["moment"], value["moment"])
        self.assertEqual(decoded["amount"], value["amount"])
        self.assertEqual(decoded["pair"], value["pair"])

    def test_refuses_what_it_cannot_carry_and_names_where(self):
        for value, where in (
                ({"a": [1, object()]}, "value['a'][1]"),
                ({"a": {1, 2}}, "value['a']"),
                ([b"bytes"], "value[0]"),
                ([float("nan")], "value[0]"),
                ({1: "int key"}, "value"),
                (["\udc80 lone surrogate"], "value[0]"),
                ({"__type__": "x"}, "value"),
                ([datetime.datetime.now(datetime.UTC)], "value[0]"),
        ):
            with self.assertRaisesRegex(ValueError, r"^%s" % where.replace("[", r"\[")):
                encoding.dumps(value)
