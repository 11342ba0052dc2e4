"""The course's helpers: Fourier and phasor pictures, text views, the ViT chapter, widgets, exercises."""
