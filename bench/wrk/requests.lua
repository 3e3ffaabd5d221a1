-- wrk script: POSTs GraphQL requests read from the file named by $REQUESTS, one per line as
-- "<bearer token, or ->" TAB "<JSON body>". Each connection's thread cycles through the lines,
-- starting at its own offset, so clients do not all ask the same thing at the same moment.
-- Requests are rendered once in init(): per request, wrk only hands back a prepared string.
local path = assert(os.getenv("REQUESTS"), "set REQUESTS to a file of requests")
local lines = {}
for line in io.lines(path) do
  if line ~= "" then lines[#lines + 1] = line end
end
assert(#lines > 0, "no requests in " .. path)

local threads = 0
function setup(thread)
  thread:set("offset", threads * 7919)
  threads = threads + 1
end

local rendered = {}
local next_one = 0
function init(args)
  for n, line in ipairs(lines) do
    local token, body = line:match("^([^\t]*)\t(.*)$")
    local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
    if token ~= "-" then headers["Authorization"] = "Bearer " .. token end
    rendered[n] = wrk.format("POST", nil, headers, body)
  end
  next_one = (offset or 0) % #rendered
end

function request()
  next_one = next_one % #rendered + 1
  return rendered[next_one]
end
