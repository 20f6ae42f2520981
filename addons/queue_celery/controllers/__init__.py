from . import bus
from . import metrics
