"""Venue time: the offset to the venue's clock, estimated from round trips, with alarms."""

from .venue_clock import ClockAlarm, VenueClock

__all__ = ["ClockAlarm", "VenueClock"]
