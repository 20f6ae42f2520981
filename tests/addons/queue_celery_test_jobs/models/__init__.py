from . import test_record
