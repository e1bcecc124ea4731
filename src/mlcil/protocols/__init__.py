"""Protocols: class order, B/C session split, label absence, test sets."""

from mlcil.data.split import stratified_split  # re-exported: it lived here before it moved to mlcil.data
from mlcil.protocols.protocol import CAMPAIGNS, Protocol, campaign_sessions, parse_spec, session_sizes
from mlcil.protocols.session import Session, Stream

__all__ = ["CAMPAIGNS", "Protocol", "campaign_sessions", "Session", "Stream", "parse_spec", "session_sizes", "stratified_split"]
