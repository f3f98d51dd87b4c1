"""The bundled sample organisation, Northwind Traders (northwind.example), that
`governor demo` copies out and reconciles with the clock pinned to 2026-11-20T12:00:00Z.

Data files only; PLANTED.md lists every planted problem and the clean cases beside them.
"""
