"""Profiles are YAML documents that remember where each value was written: a bureau edits
profiles by hand, so an error must say which file and which line to fix. The reader is the
policies' own (:mod:`policies.yamldoc`)."""

from policies.yamldoc import MarkedDoc, PathKey, YamlDocError, load_marked, schema_errors

__all__ = ["MarkedDoc", "PathKey", "YamlDocError", "load_marked", "schema_errors"]
