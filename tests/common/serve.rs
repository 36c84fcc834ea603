//! The one HTTP server loop behind every test server (chart repository, token server, proxy),
//! in its own file so the benchmark's proxy (`examples/wanproxy.rs`) can use it too.

/// A body from bytes, boxed so every test server has one body type.
pub type Body = http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error>;

/// A whole body.
pub fn full(b: bytes::Bytes) -> Body {
    use http_body_util::BodyExt;
    BodyExt::boxed(http_body_util::Full::new(b).map_err(|never| match never {}))
}

/// Serves HTTP/1.1 on 127.0.0.1 (a random port) with the handler `make(address)` returns,
/// until the returned runtime is dropped: the one server loop behind the chart repository,
/// the token server and the proxy.
pub fn serve_http<M, F, Fut>(make: M) -> (std::net::SocketAddr, tokio::runtime::Runtime)
where
    M: FnOnce(std::net::SocketAddr) -> F,
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = hyper::Response<Body>> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handler = make(addr);
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let fut = handler(req);
                    async move { Ok::<_, std::convert::Infallible>(fut.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, rt)
}
