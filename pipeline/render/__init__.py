"""Video rendering: the assembler (scene bodies, transitions, the mux, the size cap), the
captions laid out and drawn on frames, and the font chain that covers every script.

It knows nothing of stories or the queue: the assemble step hands it files and timings."""
