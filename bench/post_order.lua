-- wrk script: POST /orders with a JSON order; counts every answer that is not 201.
-- Usage: wrk -t2 -c100 -d20s --latency -s bench/post_order.lua http://127.0.0.1:PORT/orders
-- done() prints one line "non201 N" (N = sum over threads) followed by "status CODE COUNT"
-- for each non-201 status seen, so scripts can parse it.

wrk.method = "POST"
wrk.body = '{"phoneNumber":"010-1234-5678","productName":"latte","qty":1,"amt":4500}'
wrk.headers["Content-Type"] = "application/json"
-- With auth on, the bearer of CAFE_TOKEN (a manager's: it may order for any phone).
local token = os.getenv("CAFE_TOKEN")
if token and token ~= "" then
   wrk.headers["Authorization"] = "Bearer " .. token
end

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   non201 = 0
   created = 0
   statuses = {}
end

function response(status, headers, body)
   if status == 201 then
      created = created + 1
   else
      non201 = non201 + 1
      local key = tostring(status)
      statuses[key] = (statuses[key] or 0) + 1
   end
end

function done(summary, latency, requests)
   local total_non201, total_created = 0, 0
   local by_status = {}
   for _, thread in ipairs(threads) do
      total_non201 = total_non201 + thread:get("non201")
      total_created = total_created + thread:get("created")
      local s = thread:get("statuses")
      for code, n in pairs(s) do
         by_status[code] = (by_status[code] or 0) + n
      end
   end
   io.write(string.format("created %d\n", total_created))
   io.write(string.format("non201 %d\n", total_non201))
   for code, n in pairs(by_status) do
      io.write(string.format("status %s %d\n", code, n))
   end
end
