//! Data: IDX files, locating and verifying Fashion-MNIST, the seeded 80/10/10 split.
