from django.dispatch import Signal

# Sent once a usage meter reading is stored (after its transaction commits), with `reading` (the
# account's MeterReading) and `previous_usd_per_hour` (the last reading's known dollars an hour,
# None for a first reading). What acts on spend in minutes (automatic freezes, schedules) receives
# it; a receiver that raises is logged and does not undo the reading.
meter_read = Signal()
