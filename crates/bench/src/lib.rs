//! Load generation over the etcd v3 API: the same code drives etcd and Synod.
