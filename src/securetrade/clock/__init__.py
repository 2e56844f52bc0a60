"""Venue time: the offset to the venue's clock, estimated from round trips."""

from .venue_clock import VenueClock

__all__ = ["VenueClock"]
