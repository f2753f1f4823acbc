"""The parse -> route -> plan path as it stood before it was made faster: an oracle, not product code.

``test_plan_equivalence`` plans every payload it can find or make with both this copy and the engine,
and requires the same signals, plans, notes, refusals and errors. Nothing else may import it.
"""
