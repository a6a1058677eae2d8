//! Reading and writing image arrays in NumPy .npy format.
