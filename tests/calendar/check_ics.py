#!/usr/bin/python3
"""Expand an iCalendar feed independently of the Rust code that wrote it.

Usage: check_ics.py FILE.ics START END   (START/END as YYYY-MM-DD, UTC midnight)

Parses FILE with icalendar.Calendar.from_ical, expands every VEVENT with
recurring_ical_events.of(cal).between(START, END) and prints one JSON line
per occurrence, sorted:

    {"uid": "...", "start": "2026-09-07T13:00:00Z", "end": "2026-09-07T14:30:00Z"}

Needs the Debian packages python3-icalendar and python3-recurring-ical-events;
run it with /usr/bin/python3. Exits non-zero (with a message on stderr) if the
modules are missing or the feed holds something this check cannot place in
time (floating or all-day values).
"""

import datetime
import json
import sys

try:
    import icalendar
    import recurring_ical_events
except ImportError as error:
    sys.exit(
        "check_ics.py: %s; install the Debian packages python3-icalendar and "
        "python3-recurring-ical-events (apt-get install python3-icalendar "
        "python3-recurring-ical-events) and run with /usr/bin/python3" % error
    )


def day_start_utc(text):
    """Midnight UTC of an ISO date, as an aware datetime."""
    day = datetime.date.fromisoformat(text)
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc)


def rfc3339_utc(value, what, uid):
    """An aware datetime as RFC 3339 in UTC; anything else is an error."""
    if not isinstance(value, datetime.datetime) or value.tzinfo is None:
        sys.exit("check_ics.py: %s of %s is not an absolute date-time: %r" % (what, uid, value))
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def main(argv):
    if len(argv) != 4:
        sys.exit("usage: check_ics.py FILE.ics START END  (dates as YYYY-MM-DD)")
    path, start, end = argv[1], day_start_utc(argv[2]), day_start_utc(argv[3])
    with open(path, "rb") as handle:
        calendar = icalendar.Calendar.from_ical(handle.read())

    rows = []
    for event in recurring_ical_events.of(calendar).between(start, end):
        uid = str(event["UID"])
        begin = event["DTSTART"].dt
        if "DTEND" in event:
            finish = event["DTEND"].dt
        elif "DURATION" in event:
            finish = begin + event["DURATION"].dt
        else:
            finish = begin
        rows.append(
            {
                "uid": uid,
                "start": rfc3339_utc(begin, "DTSTART", uid),
                "end": rfc3339_utc(finish, "DTEND", uid),
            }
        )

    rows.sort(key=lambda row: (row["start"], row["uid"], row["end"]))
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main(sys.argv)
