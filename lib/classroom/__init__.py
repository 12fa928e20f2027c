"""A teacher's room shared by a class: join codes, the room database (SQLite or PostgreSQL), QR codes.

What lives here is the state a room keeps between the teacher's and the participants' sessions, and
across server processes; the room's protocol around a lesson (its question, the measured reveal) is the
use case `lib/workshop.py`. May import `lib.common` only (a room stores names, codes and votes, never data,
features or results).
"""
