"""OAIS Archival Storage and Data Management: locations, the catalogue, METS, fixity. Imports only policies and metadata_profiles."""
