"""Protocols: class order, B/C session split, label absence, test sets."""

from mlcil.protocols.protocol import Protocol, parse_spec, session_sizes, stratified_split
from mlcil.protocols.session import Session, Stream

__all__ = ["Protocol", "Session", "Stream", "parse_spec", "session_sizes", "stratified_split"]
