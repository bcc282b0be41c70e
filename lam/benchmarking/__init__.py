"""Side-by-side accuracy and speed measurements of the LAM backends and the teacher."""
