-- wrk script for every benchmark in bench/: replays pre-built requests and reports as JSON.
--
--   REQUESTS_FILE  the requests, written by bench/common.py (write_requests): records of
--                  path "\n" n "\n" (name "\n" value "\n") x n, body-length "\n" body
--   CYCLE=1        send the records in turn (each thread its own share; the whole file is one
--                  pass: `wrapped` counts requests sent after a thread ran out). Otherwise the
--                  first record is sent over and over as a static request (cheapest for wrk).
--   CHECK=status   count a response as ok only if its status is 200;
--   CHECK=body     ... and its body contains NEEDLE. Unset: no response() hook (wrk then parses no
--                  body and calls no Lua per response), and ok = responses minus wrk's non-2xx.
--
-- done() prints one line "WRK_RESULT {json}" that bench/common.py parses.

local function read_records(name)
   local f = assert(io.open(name, "rb"))
   local data = f:read("*a")
   f:close()
   local records, pos = {}, 1
   local function line()
      local stop = assert(data:find("\n", pos, true), "truncated requests file")
      local s = data:sub(pos, stop - 1)
      pos = stop + 1
      return s
   end
   while pos <= #data do
      local path = line()
      local headers = {}
      for _ = 1, tonumber(line()) do
         local name = line()
         headers[name] = line()
      end
      local length = tonumber(line())
      local body = data:sub(pos, pos + length - 1)
      pos = pos + length
      records[#records + 1] = { path = path, headers = headers, body = body }
   end
   return records
end

local records = read_records(os.getenv("REQUESTS_FILE"))
local cycle = os.getenv("CYCLE") == "1"
local check = os.getenv("CHECK") or ""
local needle = os.getenv("NEEDLE") or ""

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   threads[#threads + 1] = thread
end

ok, bad, wrapped, sample = 0, 0, 0, ""

function init(args)
   wrk.method = "POST"
   local host = wrk.headers["Host"] -- wrk.init set it from the URL before calling us
   for _, r in ipairs(records) do
      r.headers["Host"] = r.headers["Host"] or host
   end
   local first = records[1]
   wrk.path, wrk.headers, wrk.body = first.path, first.headers, first.body
   if cycle then
      mine = {}
      local n = tonumber(args[1]) -- the number of threads (bench/common.py passes it after --)
      for i = id + 1, #records, n do
         local r = records[i]
         mine[#mine + 1] = wrk.format("POST", r.path, r.headers, r.body)
      end
      at = 0
   end
end

if cycle then
   function request()
      at = at + 1
      if at > #mine then
         wrapped = wrapped + 1
         at = 1
      end
      return mine[at]
   end
end

if check ~= "" then
   function response(status, headers, body)
      if status == 200 and (check ~= "body" or body:find(needle, 1, true)) then
         ok = ok + 1
      else
         bad = bad + 1
         if sample == "" then
            sample = tostring(status) .. " " .. tostring(body):sub(1, 200)
         end
      end
   end
end

local function json_string(s)
   return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function done(summary, latency, requests)
   local total_ok, total_bad, total_wrapped, samples = 0, 0, 0, {}
   for _, t in ipairs(threads) do
      total_ok = total_ok + t:get("ok")
      total_bad = total_bad + t:get("bad")
      total_wrapped = total_wrapped + t:get("wrapped")
      local s = t:get("sample")
      if s ~= "" then samples[#samples + 1] = json_string(s) end
   end
   local e = summary.errors
   local parts = {
      string.format('"duration_us": %d', summary.duration),
      string.format('"requests": %d', summary.requests),
      string.format('"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}',
         e.connect, e.read, e.write, e.status, e.timeout),
      string.format('"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}',
         latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean),
      string.format('"wrapped": %d', total_wrapped),
      string.format('"check": %s', json_string(check)),
      string.format('"bad_samples": [%s]', table.concat(samples, ", ")),
   }
   if check ~= "" then
      parts[#parts + 1] = string.format('"ok": %d', total_ok)
      parts[#parts + 1] = string.format('"bad": %d', total_bad)
   end
   io.write("WRK_RESULT {" .. table.concat(parts, ", ") .. "}\n")
end
