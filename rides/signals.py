"""Signals rides sends inside its transactions, for the apps built on rides to add what they
decide to a change, through rides' services. Work that can wait follows events (`publish`)."""

from django.dispatch import Signal

# Sent by `ride_complete` with the locked `ride` (its fare set) before the completion is saved.
ride_completing = Signal()
