"""A fake of the Meta Graph / Marketing API (see ``graph``)."""

from allot.fakes.meta.graph import GraphAccount, GraphObject, GraphWrite, MetaFakeState, create_meta_fake

__all__ = ["GraphAccount", "GraphObject", "GraphWrite", "MetaFakeState", "create_meta_fake"]
