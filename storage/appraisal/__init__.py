"""Appraisal and disposition (鉴定与销毁)."""
