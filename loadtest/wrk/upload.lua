-- wrk script: POST the same image (env IMAGE, e.g. a ~200 KB JPEG) as a raw body to /v1/images.
-- IMAGE=photo.jpg wrk -t2 -c32 -d10s -s loadtest/wrk/upload.lua http://127.0.0.1:8080/v1/images
local f = assert(io.open(os.getenv("IMAGE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*all")
wrk.headers["Content-Type"] = "image/jpeg"
f:close()
