"""Protocols: class order, B/C session split, label absence, test sets."""

from mlcil.protocols.protocol import CAMPAIGNS, Protocol, campaign_sessions, parse_spec, session_sizes, stratified_split
from mlcil.protocols.session import Session, Stream

__all__ = ["CAMPAIGNS", "Protocol", "campaign_sessions", "Session", "Stream", "parse_spec", "session_sizes", "stratified_split"]
