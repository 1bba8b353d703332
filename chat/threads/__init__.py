"""Threads: replies to a top-level message, the root's summary, who follows and how far they read.

A reply is a message of its room whose `thread` names its root. The root keeps
its thread at a glance (live reply count, newest reply time, latest repliers)
and each follower has a `ThreadFollow` row with a read marker. Every write
runs inside a logged change (the send path's, a delete's, an edit's, or its
own), so counts are computed in the transaction of the change that moved them
and travel through the event log: every tab, device and reconnect agrees.

Who may see a thread is who may read its room (chat.access): a thread of a
private room is refused to others exactly as one that does not exist.
`selectors` reads, `services` writes, `api` serves HTTP.
"""
