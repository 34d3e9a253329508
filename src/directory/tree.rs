//! Where a DN points in the tree (DESIGN.md section 3).
