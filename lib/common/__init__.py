"""The foundation: errors a user can act on, where files go, the server's limits (`Budget`), and
text made safe to show.

Every layer may import it; it imports nothing from lib.
"""
