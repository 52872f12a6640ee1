//! Remote archives (issue #11) against real servers the tests start
//! themselves: nginx over HTTP (range requests, ETags, If-Match), moto as an
//! S3 endpoint, and a fault-injecting proxy. They need root (serving) and
//! nginx and moto installed (.ci/run installs both); a server that cannot
//! start fails the test.

#[path = "archive/common.rs"]
mod common;
#[path = "support/servers.rs"]
mod servers;
#[path = "support/mod.rs"]
mod support;

#[allow(dead_code)]
#[path = "hydrate/served.rs"]
mod served;

#[path = "remote/faults.rs"]
mod faults;
#[path = "remote/http.rs"]
mod http;
#[path = "remote/s3.rs"]
mod s3;
#[path = "remote/util.rs"]
mod util;
