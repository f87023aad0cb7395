"""TAMS 8.2 types: timestamps, timeranges, resource models, command and event envelopes."""

from tams_schema.timerange import MAX_NS as MAX_NS
from tams_schema.timerange import MIN_NS as MIN_NS
from tams_schema.timerange import NS_PER_SECOND as NS_PER_SECOND
from tams_schema.timerange import TIMERANGE_PATTERN as TIMERANGE_PATTERN
from tams_schema.timerange import TIMESTAMP_PATTERN as TIMESTAMP_PATTERN
from tams_schema.timerange import TimeRange as TimeRange
from tams_schema.timerange import TimeRangeError as TimeRangeError
from tams_schema.timerange import TimeRangeField as TimeRangeField
from tams_schema.timerange import Timestamp as Timestamp
from tams_schema.timerange import TimestampField as TimestampField
